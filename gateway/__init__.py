"""The docgw application: settings, domain rules, store, use cases, scheduler, web API and CLI."""
