"""Reading and writing volumes and Decathlon tasks; no Qt, no torch."""
