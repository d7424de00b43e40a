"""How a checked download leaves the bot; ``s3``: a presigned redirect to object storage."""
