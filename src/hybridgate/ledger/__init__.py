"""The ledger: what every request cost, what it would have cost on the frontier model,
committed durably before the response completes."""

from hybridgate.ledger.prices import Price, PriceBook
from hybridgate.ledger.record import Record
from hybridgate.ledger.writer import Ledger, LedgerUnavailable

__all__ = ["Ledger", "LedgerUnavailable", "Price", "PriceBook", "Record"]
