"""The OpenRLHF integration: the hooks the patch series calls from upstream's code, and the flags it adds."""
