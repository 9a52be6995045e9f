"""`report_id_for` where tools outside intake import it today (the demo, the load tools, the end-to-end
test). The rule lives in `caseway_intake.domain.normalise`; it is to move to shared (issue 10, item 6).
"""

from caseway_intake.domain.normalise import report_id_for

__all__ = ["report_id_for"]
