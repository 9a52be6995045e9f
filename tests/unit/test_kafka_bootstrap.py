"""The services reach a Kafka cluster from its list of bootstrap servers (issue 13 item 3)."""

from __future__ import annotations

from caseway_shared.kafka import bootstrap_list, make_broker
from caseway_shared.settings import ServiceSettings


def test_a_service_reaches_every_broker_of_a_comma_separated_bootstrap_list() -> None:
    settings = ServiceSettings.model_validate({"kafka_bootstrap_servers": "10.0.0.1:9092, 10.0.0.2:9092,"})
    assert bootstrap_list(settings.kafka_bootstrap_servers) == ["10.0.0.1:9092", "10.0.0.2:9092"]
    broker = make_broker(settings, service="router")
    # FastStream takes a string as one address ("10.0.0.1:9092,10.0.0.2:9092" could not be resolved).
    assert broker.config.broker_config.builder.keywords["bootstrap_servers"] == [
        "10.0.0.1:9092",
        "10.0.0.2:9092",
    ]
