"""The service layer: every database query and file operation of the workstation.

Route functions parse and authorise; services do the work inside the caller's transaction.
"""
