"""chronoseal."""
