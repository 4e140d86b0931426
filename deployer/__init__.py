"""GitOps continuous deployment for a BinderHub federation."""
