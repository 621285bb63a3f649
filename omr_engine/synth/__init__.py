"""Synthetic training data: engraving scores in varied styles, cropping systems and staves
with their measure boxes, and degrading crops so they look like scans and phone photos."""
