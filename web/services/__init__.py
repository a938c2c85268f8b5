"""What the pages and the API both do, written once: they are two adapters around these."""
