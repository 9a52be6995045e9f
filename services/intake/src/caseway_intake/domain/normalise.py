"""Turning an accepted upstream report into the canonical `ReportReceived` (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caseway_intake.domain.categories import CategoryMatcher
from caseway_shared.events import GeoPoint, Place, ReportReceived, report_id_for

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from caseway_intake.domain.media import Photo
    from caseway_shared.contact_centre import ContactCentreReport, ReporterContact
    from caseway_shared.council import Council


@dataclass(frozen=True, slots=True)
class AcceptedReport:
    """A validated report: the event to publish, and the contact details intake keeps to itself."""

    event: ReportReceived
    contact: ReporterContact | None
    client_key: str | None = None
    token: str | None = None
    extras: Mapping[str, Any] | None = None
    photos: tuple[Photo, ...] = ()
    # A keyed fingerprint of the Open311 body, so that a reused Idempotency-Key with another body is refused.
    request_digest: bytes | None = None


def normalise(
    report: ContactCentreReport, council: Council | CategoryMatcher, *, now: datetime
) -> AcceptedReport:
    """The canonical event for `report`; pass a `CategoryMatcher` when normalising many."""
    matcher = council if isinstance(council, CategoryMatcher) else CategoryMatcher(council)
    location = report.location
    point = (
        GeoPoint(lat=location.lat, lon=location.lon)
        if location.lat is not None and location.lon is not None
        else None
    )
    event = ReportReceived(
        occurred_at=now,
        report_id=report_id_for(report.source_system, report.source_id),
        source_system=report.source_system,
        source_id=report.source_id,
        channel=report.channel,
        received_at=report.received_at,
        category=matcher.match(code=report.category, text=report.category_text or report.description),
        category_text=report.category_text,
        place=Place(
            point=point,
            accuracy_m=location.accuracy_m if point is not None else None,
            address=location.address,
            postcode=location.postcode.upper() if location.postcode else None,
            uprn=location.uprn,
            usrn=location.usrn,
            asset_id=location.asset_id,
            ward_code=location.ward_code,
            land_type=location.land_type,
        ),
        description=report.description,
        attachments=tuple(str(url) for url in report.attachments),
    )
    return AcceptedReport(event=event, contact=report.reporter)
