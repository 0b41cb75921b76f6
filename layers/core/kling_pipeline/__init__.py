"""kling-pipeline core: everything the Lambda functions share (the SAM layer)."""
