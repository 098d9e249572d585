"""Self-hosting economics: hardware profiles, hourly and monthly cost, break-even."""

from hybridgate.economics.costs import (
    BreakEven,
    Hardware,
    break_even,
    hourly_cost,
    load_hardware,
    monthly_self_hosted,
)

__all__ = ["BreakEven", "Hardware", "break_even", "hourly_cost", "load_hardware",
           "monthly_self_hosted"]
