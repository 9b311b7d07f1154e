//go:build ethkeygen_localendpoints

package main

// localEndpoints is true only in the test build (tag
// ethkeygen_localendpoints), which the RIE tests point at local-kms and
// DynamoDB Local through AWS_ENDPOINT_URL_*. The release build never sets
// the tag (release.buildFlags).
const localEndpoints = true
