package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/webhook"
)

// webhookKey runs `verifyd webhook-key [show|list|add|promote ID|delete ID]`:
// the account's Ed25519 webhook signing keys (D35). show prints the active
// public key alone (base64 of the raw 32 bytes), for TELNYX_PUBLIC_KEY.
func webhookKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	sub := "show"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		sub, args = args[0], args[1:]
	}
	cfg := defaultConfig()
	fs := cfg.flags("webhook-key "+sub, getenv, stderr)
	accountID := fs.String("account", "", "account ID (default: the first account)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, getenv, stderr, nil)
	if err != nil {
		return err
	}
	defer a.store.Close()
	id, err := a.accountID(ctx, *accountID)
	if err != nil {
		return err
	}
	if _, err := a.store.GetAccount(ctx, id); err != nil {
		return fmt.Errorf("no account %s", id)
	}
	keyArg := func() (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("usage: verifyd webhook-key %s KEY_ID", sub)
		}
		return fs.Arg(0), nil
	}
	switch sub {
	case "show":
		ks, err := a.svc.WebhookKeys(ctx, id)
		if err != nil {
			return err
		}
		for _, k := range ks {
			if k.State == verifyd.KeyActive {
				fmt.Fprintln(stdout, webhook.PublicKeyString(k.PublicKey))
				return nil
			}
		}
		return errors.New("no active key")
	case "list":
		ks, err := a.svc.WebhookKeys(ctx, id)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tPUBLIC KEY\tCREATED\tUPDATED")
		for _, k := range ks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.State, webhook.PublicKeyString(k.PublicKey),
				verifyd.FormatTime(k.CreatedAt), verifyd.FormatTime(k.UpdatedAt))
		}
		return tw.Flush()
	case "add":
		k, err := a.svc.AddNextWebhookKey(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Added key %s (state next: published, not signing yet). Public key:\n%s\n",
			k.ID, webhook.PublicKeyString(k.PublicKey))
	case "promote":
		kid, err := keyArg()
		if err != nil {
			return err
		}
		if err := a.svc.PromoteWebhookKey(ctx, id, kid); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Key %s signs from now on (other nodes within 10 s); the previous key is retired.\n", kid)
	case "delete":
		kid, err := keyArg()
		if err != nil {
			return err
		}
		if err := a.svc.DeleteWebhookKey(ctx, id, kid); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "deleted", kid)
	default:
		return fmt.Errorf("unknown webhook-key command %q", sub)
	}
	return nil
}
