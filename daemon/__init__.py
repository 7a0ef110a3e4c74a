"""kithkeep subpackage."""
