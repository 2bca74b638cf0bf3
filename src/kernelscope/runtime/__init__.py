"""Run-time pieces: probe specs, the loader, the batch reader, the decoder."""
