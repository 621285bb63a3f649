"""DeepMusic-OCR engine: reads sheet music images into musical events. Knows nothing of Qt."""

__version__ = "0.1.0"
