"""Continuous delivery: environments, promotions with their gates and approvals, the local
deployment that reconciles to an environment's desired state, canary and shadow rollouts,
rollback, and rendered Kubernetes manifests."""
