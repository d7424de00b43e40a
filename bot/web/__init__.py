"""The HTTP edge: routes, pages, and the one place where status codes are chosen."""
