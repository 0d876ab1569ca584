package views

import "github.com/herald-mail/herald/models"

// basisLabels are the lawful bases in the words of GDPR Article 6, as a
// marketer reads them; the stored identifier stays in the value.
var basisLabels = map[string]string{
	models.BasisConsent:     "Consent (they agreed to receive it)",
	models.BasisLegitimate:  "Legitimate interest",
	models.BasisContract:    "Contract (needed for a contract with them)",
	models.BasisLegal:       "Legal obligation",
	models.BasisNotRequired: "None needed (withdrawal or erasure)",
}

// BasisLabel is the human label of a lawful basis identifier.
func BasisLabel(b string) string {
	if l, ok := basisLabels[b]; ok {
		return l
	}
	return b
}
