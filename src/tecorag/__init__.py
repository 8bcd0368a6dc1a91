"""tecorag: knowledge-base question answering for Chinese enterprise documents."""

__version__ = "0.1.0"
