"""Governance between the wire and the router: who is asking and what they may use."""
