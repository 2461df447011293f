"""The jsonnet mixin rendered (rules, dashboards, Kubernetes objects); dashboards' queries run."""
