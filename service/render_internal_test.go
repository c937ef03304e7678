package service

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// expandPlaceholders must do exactly what rePlaceholder.ReplaceAllStringFunc
// does, which it replaced on the trigger path.
func TestExpandPlaceholdersMatchesRegexp(t *testing.T) {
	repl := func(ph string) string {
		switch strings.TrimSpace(ph[2 : len(ph)-2]) {
		case "code":
			return "12345"
		case "app_name":
			return "App"
		}
		return "<" + ph + ">" // visible, so a wrong boundary shows
	}
	cases := []string{
		"", "plain", "{{code}}", "Your code is {{ code }} for {{app_name}}.", "{{code", "code}}",
		"{{}}", "{{ }}", "{{{code}}", "{{code}}}", "{{a}b}}", "{{{a}x}}", "}}{{code}}{{", "{{x}}{{y}}",
		"{{co\nde}}", "{{ app_name }}{{code}}", "{ {code}}", "{{code} }", "ünï {{ code }} çødé",
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"{", "}", "{{", "}}", " ", "code", "app_name", "x", "\t", "é"}
	for range 20000 {
		var b strings.Builder
		for n := r.IntN(12); n > 0; n-- {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, text := range cases {
		want := rePlaceholder.ReplaceAllStringFunc(text, repl)
		if got := expandPlaceholders(text, repl); got != want {
			t.Fatalf("expandPlaceholders(%q) = %q, want %q (the regexp's)", text, got, want)
		}
	}
}

func BenchmarkExpandPlaceholders(b *testing.B) {
	text := texts["en"].sms
	repl := func(ph string) string { return "12345" }
	b.Run("regexp", func(b *testing.B) {
		for b.Loop() {
			_ = rePlaceholder.ReplaceAllStringFunc(text, repl)
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			_ = expandPlaceholders(text, repl)
		}
	})
}
