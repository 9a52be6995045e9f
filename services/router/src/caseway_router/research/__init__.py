"""Research tooling for the router: measurements of its decisions on real data, run by hand or by CI's
floors, never by the service. `python -m caseway_router.research.evaluate` measures duplicate detection."""
