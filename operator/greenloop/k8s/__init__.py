"""The operator shell: kopf handlers and the Kubernetes gateway (docs/design.md, "Architecture")."""
