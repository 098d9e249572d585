"""Core types shared by every stage: requests, responses, usage and errors."""
