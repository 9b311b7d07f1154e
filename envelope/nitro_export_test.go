package envelope

// Exported for the external tests of the Nitro recipient path.
var (
	OpenEnvelopedData  = openEnvelopedData
	ParseEnvelopedData = func(b []byte) error { _, err := parseEnvelopedData(b); return err }
	PKCS7PadLen        = pkcs7PadLen
)
