"""Every SQL statement of the demo (the local n8n of `make run-n8n`), named where it runs."""

# What `n8n update:workflow --id=… --active=true` runs in n8n 1.123.81
# (WorkflowRepository.updateActiveState), in n8n's own database.
ACTIVATE_N8N_WORKFLOW = """UPDATE workflow_entity SET "activeVersionId" = "versionId", active = true
WHERE id = $1"""
