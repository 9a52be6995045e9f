"""Proof under load and faults: a realistic load generator, the end-to-end benchmark against the raw Kafka
ceiling, the fault suite and the fuzz run (``caseway bench``, ``caseway faults``, ``caseway fuzz``).

Everything here runs against a stack of its own (``loadtest.stack``: a second Kafka and PostgreSQL on other
ports with their own state folder), never the shared development stack, because the fault suite kills and
restarts the broker and the database.
"""
