"""taskq serializers."""
