"""The built-in generator zoo: real photo patches and fakes from small generators trained here."""
