//! Kubernetes API simulator (see README.md beside this file).
