"""The plugin's integration with BasicSR: the patches BasicSR 1.4.2 needs, option files
(safe reading, preflight checks), resuming, precision, checkpoint loading, errors and
output folders. Imports only the standard library, torch, BasicSR and the plugin's
registries; never inference/ or tools/."""
