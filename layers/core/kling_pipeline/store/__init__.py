"""Data access: DynamoDB and S3 behind small typed interfaces that take their client."""
