"""The worker: claims tasks from the store and runs them (see loop.Worker)."""
