"""Exceptions that the command line turns into one-line errors."""


class KernelscopeError(Exception):
    """An error with a message fit to show a user as it is."""

    exit_code = 1


class UsageError(KernelscopeError):
    exit_code = 2


class PrivilegeError(KernelscopeError):
    exit_code = 77


class UnavailableError(KernelscopeError):
    """A probe or feature that this kernel cannot provide."""

    exit_code = 3
