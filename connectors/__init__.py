"""One module per counterparty protocol behind one Connector protocol (built in later issues)."""
