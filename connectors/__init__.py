"""CRM connectors: where actions leave Clientshift. One small interface (`connectors.base`), one module
per CRM, one retry policy (`connectors.retry`)."""
