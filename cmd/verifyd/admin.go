package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/verifyd/verifyd"
)

func apikey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: verifyd apikey create|list|revoke")
	}
	sub, args := args[0], args[1:]
	cfg := defaultConfig()
	fs := cfg.flags("apikey "+sub, getenv, stderr)
	name := fs.String("name", "", "key name")
	accountID := fs.String("account", "", "account ID (default: the first account)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, getenv, stderr, nil)
	if err != nil {
		return err
	}
	defer a.store.Close()
	switch sub {
	case "create":
		if *name == "" {
			return errors.New("apikey create needs --name")
		}
		id, err := a.accountID(ctx, *accountID)
		if err != nil {
			return err
		}
		secret, k, err := a.svc.CreateAPIKey(ctx, id, *name)
		if verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
			return fmt.Errorf("no account %s", id)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "API key %q (id %s) for account %s; shown once:\n%s\n", k.Name, k.ID, id, secret)
	case "list":
		keys, err := a.svc.APIKeys(ctx, *accountID)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPREFIX\tNAME\tACCOUNT\tCREATED\tREVOKED")
		for _, k := range keys {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = verifyd.FormatTime(*k.RevokedAt)
			}
			fmt.Fprintf(tw, "%s\t%s…\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, k.AccountID, verifyd.FormatTime(k.CreatedAt), revoked)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("usage: verifyd apikey revoke ID|PREFIX")
		}
		if err := a.svc.RevokeAPIKey(ctx, fs.Arg(0)); err != nil {
			if verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
				return fmt.Errorf("no active key %s", fs.Arg(0))
			}
			return err
		}
		fmt.Fprintln(stdout, "revoked", fs.Arg(0))
	default:
		return fmt.Errorf("unknown apikey command %q", sub)
	}
	return nil
}

func account(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: verifyd account create|list")
	}
	sub, args := args[0], args[1:]
	cfg := defaultConfig()
	fs := cfg.flags("account "+sub, getenv, stderr)
	name := fs.String("name", "", "account name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, getenv, stderr, nil)
	if err != nil {
		return err
	}
	defer a.store.Close()
	switch sub {
	case "create":
		if *name == "" {
			return errors.New("account create needs --name")
		}
		acct, err := a.svc.CreateAccount(ctx, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "account %q created; its ID:\n%s\n", acct.Name, acct.ID)
	case "list":
		accts, err := a.svc.Accounts(ctx)
		if err != nil {
			return err
		}
		for _, x := range accts {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", x.ID, x.Name, verifyd.FormatTime(x.CreatedAt))
		}
	default:
		return fmt.Errorf("unknown account command %q", sub)
	}
	return nil
}

// keysCmd rotates the server key: a new current key is put first; old keys
// stay so pending codes and queued jobs keep working. Restart every process
// afterwards; remove old keys from the file once the longest timeout passed.
func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("usage: verifyd keys rotate")
	}
	cfg := defaultConfig()
	fs := cfg.flags("keys rotate", getenv, stderr)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	kf, err := readOrCreateKeyFile(cfg.KeysFile)
	if err != nil {
		return err
	}
	kf.ServerKeys = append([]string{newKey()}, kf.ServerKeys...)
	if err := writeKeyFile(cfg.KeysFile, kf, false); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s now holds %d server keys (new one first); restart verifyd to use it\n", cfg.KeysFile, len(kf.ServerKeys))
	return nil
}
