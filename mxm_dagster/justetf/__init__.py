"""The justETF reference flow's own code, apart from the library."""
