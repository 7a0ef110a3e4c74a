"""Connectors: protocol adapters that produce records or write reminders.

Each implements one role of :mod:`kithkeep.interfaces`; the registry builds
them from config by ``type`` and imports them lazily, so that a user of Maildir
never imports the Google client.
"""
