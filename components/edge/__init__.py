"""The platform's edge: the nginx reverse proxy, its generated nginx.conf and the Ingress in front."""
