"""CRM writers (SPEC §6): outbound mappings, delta planning, batched Salesforce and HubSpot
writes under a shared quota, and the flush of the outbox."""
