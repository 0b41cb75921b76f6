"""Pure domain: request models, validation, statuses, pricing. No I/O here."""
