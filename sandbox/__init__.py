"""The CRM sandbox: a local HTTPS server speaking the Salesforce REST and HubSpot CRM subsets the
writers use, with limits, fault injection and webhooks back to the receiver (SPEC §2)."""
