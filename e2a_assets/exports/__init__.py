"""Accounting exports of the ledger: a tenant-month's invoices and credit/debit notes in the import
formats of QuickBooks Desktop (IIF), QuickBooks Online (invoice CSV) and Xero (sales invoice and
credit note CSV), each line booked to the income account its charge kind maps to
(domain/gl_accounts.py). The generic CSV export stays in documents/exports.py."""
