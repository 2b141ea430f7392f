"""Pure domain rules of the gateway: lifecycle, retry, deadlines, routing."""
