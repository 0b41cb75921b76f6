"""Provider adapters (official Kling API, EvoLink gateway, kling3api), their HTTP plumbing and the router."""
