"""The run machinery: configuration, methods as weighted losses, the trainer, callbacks, workdirs and results."""
