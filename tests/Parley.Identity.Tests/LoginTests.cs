using Parley.Identity;

namespace Parley.Identity.Tests;

/// <summary>Challenge-response login, tokens and refresh rotation against a real SQLite store.</summary>
public sealed class LoginTests : IAsyncLifetime
{
    private IdentityFixture _f = null!;

    public async Task InitializeAsync() => _f = await IdentityFixture.StartAsync(o => o.Registration = RegistrationPolicy.Open);

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private static async Task<IdentityException> Refused(Func<Task> action) => await Assert.ThrowsAsync<IdentityException>(action);

    [Fact]
    public async Task A_signed_challenge_yields_tokens_that_authenticate()
    {
        var (device, role) = await _f.RegisterAsync("alice");
        Assert.Equal(HubRole.Owner, role);

        var pair = await _f.LoginAsync("alice", device);

        Assert.Equal("alice", pair.UserName);
        Assert.StartsWith("prt_", pair.RefreshToken, StringComparison.Ordinal);
        Assert.Equal(_f.NowMs + (15 * 60 * 1000), pair.AccessExpiresAtMs);
        var caller = await _f.CallerAsync(pair.AccessToken);
        Assert.Equal("alice", caller.Name);
        Assert.Equal(HubRole.Owner, caller.Role);
        Assert.Equal(pair.AccessExpiresAtMs, caller.ExpiresAtMs);
    }

    [Fact]
    public async Task A_forged_signature_is_refused_like_an_unknown_user()
    {
        var (_, _) = await _f.RegisterAsync("alice");
        var forger = Device.Create();

        var challenge = _f.Service.IssueChallenge("alice", "10.0.0.1");
        var forged = await Refused(() => _f.Service.LoginAsync("alice", challenge.Nonce, _f.NowMs, forger.SignLogin(_f.Service.HubId, "alice", challenge.Nonce, _f.NowMs), "10.0.0.1"));

        var unknown = _f.Service.IssueChallenge("nobody", "10.0.0.1");
        var noSuchUser = await Refused(() => _f.Service.LoginAsync("nobody", unknown.Nonce, _f.NowMs, forger.SignLogin(_f.Service.HubId, "nobody", unknown.Nonce, _f.NowMs), "10.0.0.1"));

        Assert.Equal("invalid_credentials", forged.Code);
        Assert.Equal(forged.Code, noSuchUser.Code);
        Assert.Equal(forged.Message, noSuchUser.Message); // no hint which one it was
        Assert.Equal(IdentityErrorKind.Unauthorized, forged.Kind);
    }

    [Fact]
    public async Task A_signature_over_another_hub_or_user_is_refused()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var challenge = _f.Service.IssueChallenge("alice", null);
        var now = _f.NowMs;

        var otherHub = await Refused(() => _f.Service.LoginAsync("alice", challenge.Nonce, now, device.SignLogin("hub_other", "alice", challenge.Nonce, now), null));

        Assert.Equal("invalid_credentials", otherHub.Code);
    }

    [Fact]
    public async Task A_nonce_works_once()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var challenge = _f.Service.IssueChallenge("alice", null);
        var now = _f.NowMs;
        var signature = device.SignLogin(_f.Service.HubId, "alice", challenge.Nonce, now);

        await _f.Service.LoginAsync("alice", challenge.Nonce, now, signature, null);
        var replay = await Refused(() => _f.Service.LoginAsync("alice", challenge.Nonce, now, signature, null));

        Assert.Equal("invalid_nonce", replay.Code);
    }

    [Fact]
    public async Task A_nonce_is_bound_to_its_user_and_expires()
    {
        var (alice, _) = await _f.RegisterAsync("alice");
        var (bob, _) = await _f.RegisterAsync("bob");

        var forAlice = _f.Service.IssueChallenge("alice", null);
        var now = _f.NowMs;
        var crossUser = await Refused(() => _f.Service.LoginAsync("bob", forAlice.Nonce, now, bob.SignLogin(_f.Service.HubId, "bob", forAlice.Nonce, now), null));
        Assert.Equal("invalid_nonce", crossUser.Code);

        var late = _f.Service.IssueChallenge("alice", null);
        _f.Clock.Advance(TimeSpan.FromSeconds(61));
        now = _f.NowMs;
        var expired = await Refused(() => _f.Service.LoginAsync("alice", late.Nonce, now, alice.SignLogin(_f.Service.HubId, "alice", late.Nonce, now), null));
        Assert.Equal("invalid_nonce", expired.Code);
    }

    [Theory]
    [InlineData(-61)]
    [InlineData(61)]
    public async Task A_timestamp_more_than_60_s_off_is_refused(int offsetSeconds)
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var challenge = _f.Service.IssueChallenge("alice", null);
        var stamp = _f.NowMs + (offsetSeconds * 1000L);

        var error = await Refused(() => _f.Service.LoginAsync("alice", challenge.Nonce, stamp, device.SignLogin(_f.Service.HubId, "alice", challenge.Nonce, stamp), null));

        Assert.Equal("invalid_timestamp", error.Code);
    }

    [Theory]
    [InlineData(-59)]
    [InlineData(59)]
    public async Task A_timestamp_within_60_s_is_accepted(int offsetSeconds)
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var challenge = _f.Service.IssueChallenge("alice", null);
        var stamp = _f.NowMs + (offsetSeconds * 1000L);

        var pair = await _f.Service.LoginAsync("alice", challenge.Nonce, stamp, device.SignLogin(_f.Service.HubId, "alice", challenge.Nonce, stamp), null);

        Assert.Equal("alice", pair.UserName);
    }

    [Fact]
    public async Task Refresh_rotates_and_a_reused_token_revokes_the_whole_family()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var first = await _f.LoginAsync("alice", device);

        var second = await _f.Service.RefreshAsync(first.RefreshToken, null);
        var third = await _f.Service.RefreshAsync(second.RefreshToken, null);
        Assert.NotEqual(first.RefreshToken, second.RefreshToken);
        Assert.Equal("alice", (await _f.CallerAsync(third.AccessToken)).Name);

        // Someone replays the first token: refused, and the legitimate newest token dies with it.
        var reuse = await Refused(() => _f.Service.RefreshAsync(first.RefreshToken, null));
        Assert.Equal("invalid_grant", reuse.Code);
        var afterReuse = await Refused(() => _f.Service.RefreshAsync(third.RefreshToken, null));
        Assert.Equal("invalid_grant", afterReuse.Code);

        // Another login is a new family and works.
        var fresh = await _f.LoginAsync("alice", device);
        Assert.NotNull(await _f.Service.RefreshAsync(fresh.RefreshToken, null));

        var audit = await _f.Store.ReadAuditAsync(0, 100);
        Assert.Contains(audit, e => e.Event == "refresh.reused" && e.Subject == "alice");
    }

    [Fact]
    public async Task Logout_revokes_the_whole_family_and_leaves_other_logins_alone()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var laptop = await _f.LoginAsync("alice", device);
        var phone = await _f.LoginAsync("alice", device);
        var rotated = await _f.Service.RefreshAsync(laptop.RefreshToken, null);

        Assert.Equal("alice", await _f.Service.LogoutAsync(laptop.RefreshToken, null)); // an already-used token of the family

        Assert.Equal("invalid_grant", (await Refused(() => _f.Service.RefreshAsync(rotated.RefreshToken, null))).Code);
        Assert.NotNull(await _f.Service.RefreshAsync(phone.RefreshToken, null)); // another login is another family
        Assert.Equal("invalid_grant", (await Refused(() => _f.Service.LogoutAsync("prt_not-a-real-token", null))).Code);
        Assert.Equal("invalid_grant", (await Refused(() => _f.Service.LogoutAsync("something-else", null))).Code);
        Assert.Contains(await _f.Store.ReadAuditAsync(0, 100), e => e.Event == "logout" && e.Subject == "alice");
    }

    [Fact]
    public async Task An_expired_refresh_token_is_refused()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var pair = await _f.LoginAsync("alice", device);

        _f.Clock.Advance(TimeSpan.FromDays(30) + TimeSpan.FromSeconds(1));

        Assert.Equal("invalid_grant", (await Refused(() => _f.Service.RefreshAsync(pair.RefreshToken, null))).Code);
        Assert.Equal("invalid_grant", (await Refused(() => _f.Service.RefreshAsync("prt_not-a-token", null))).Code);
        Assert.Equal("invalid_grant", (await Refused(() => _f.Service.RefreshAsync("garbage", null))).Code);
    }

    [Fact]
    public async Task An_access_token_expires_and_a_tampered_one_is_invalid()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var pair = await _f.LoginAsync("alice", device);

        var parts = pair.AccessToken.Split('.');
        var payload = System.Text.Encoding.UTF8.GetString(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1]));
        var elevated = System.Buffers.Text.Base64Url.EncodeToString(System.Text.Encoding.UTF8.GetBytes(payload.Replace("\"owner\"", "\"admin\"", StringComparison.Ordinal)));
        Assert.Equal("invalid", (await _f.Service.AuthenticateAsync($"{parts[0]}.{elevated}.{parts[2]}")).Error);

        var noneHeader = System.Buffers.Text.Base64Url.EncodeToString("""{"alg":"none","typ":"JWT"}"""u8);
        Assert.Equal("invalid", (await _f.Service.AuthenticateAsync($"{noneHeader}.{parts[1]}.")).Error);
        Assert.Equal("invalid", (await _f.Service.AuthenticateAsync("a.b.c")).Error);
        Assert.Equal("invalid", (await _f.Service.AuthenticateAsync("not-a-token")).Error);
        Assert.Equal("missing", (await _f.Service.AuthenticateAsync(null)).Error);

        _f.Clock.Advance(TimeSpan.FromMinutes(15));
        Assert.Equal("expired", (await _f.Service.AuthenticateAsync(pair.AccessToken)).Error);
    }

    [Fact]
    public async Task A_banned_user_cannot_log_in_or_use_a_live_token()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var pair = await _f.LoginAsync("alice", device);

        await _f.Store.SetBannedAsync("alice", _f.NowMs);

        Assert.Equal("banned", (await _f.Service.AuthenticateAsync(pair.AccessToken)).Error);
        Assert.Equal("banned", (await Refused(() => _f.LoginAsync("alice", device))).Code);
    }

    [Fact]
    public async Task The_role_is_read_at_authentication_so_a_demotion_applies_to_existing_tokens()
    {
        await _f.RegisterAsync("owner1");
        var (device, role) = await _f.RegisterAsync("alice");
        Assert.Equal(HubRole.Member, role);
        var pair = await _f.LoginAsync("alice", device);

        await _f.Store.SetRoleAsync("alice", HubRole.Guest);

        Assert.Equal(HubRole.Guest, (await _f.CallerAsync(pair.AccessToken)).Role);
    }

    [Fact]
    public async Task Failed_logins_are_throttled_per_user_and_every_attempt_per_address()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var forger = Device.Create();
        for (var i = 0; i < 10; i++)
        {
            await Assert.ThrowsAsync<IdentityException>(() => _f.LoginAsync("alice", forger, $"10.0.0.{i}"));
        }
        // Ten failures: even the right key is refused for now, from any address.
        var locked = await Assert.ThrowsAsync<IdentityException>(() => _f.LoginAsync("alice", device, "10.0.1.1"));
        Assert.Equal("too_many_attempts", locked.Code);
        Assert.Equal(IdentityErrorKind.TooManyRequests, locked.Kind);
        Assert.True(locked.RetryAfterSeconds is >= 1);

        // One more attempt after the refill interval.
        _f.Clock.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal("alice", (await _f.LoginAsync("alice", device, "10.0.1.2")).UserName);

        // Asking for challenges in someone's name does not lock them out...
        for (var i = 0; i < 25; i++)
        {
            _f.Service.IssueChallenge("alice", $"172.16.0.{i}");
        }
        Assert.Equal("alice", (await _f.LoginAsync("alice", device, "10.0.1.3")).UserName);

        // ...but one address gets 30 attempts of any kind, then waits.
        for (var i = 0; i < 30; i++)
        {
            _f.Service.IssueChallenge($"user{i}", "192.168.1.1");
        }
        Assert.Equal("too_many_attempts", Assert.Throws<IdentityException>(() => _f.Service.IssueChallenge("someone", "192.168.1.1")).Code);
        _f.Service.IssueChallenge("someone", "192.168.1.2"); // other addresses are unaffected
    }

    [Fact]
    public async Task Racing_refreshes_of_one_token_leave_no_live_token_behind()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var pair = await _f.LoginAsync("alice", device);

        var results = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            try
            {
                return await _f.Service.RefreshAsync(pair.RefreshToken, null);
            }
            catch (IdentityException)
            {
                return null;
            }
        })));

        Assert.True(results.Count(r => r is not null) <= 1);
        foreach (var winner in results.Where(r => r is not null))
        {
            // The reuse revoked the family, including the token the winner just got.
            Assert.Equal("invalid_grant", (await Assert.ThrowsAsync<IdentityException>(() => _f.Service.RefreshAsync(winner!.RefreshToken, null))).Code);
        }
    }

    [Fact]
    public async Task Failures_are_audited_without_secrets()
    {
        var (device, _) = await _f.RegisterAsync("alice");
        var pair = await _f.LoginAsync("alice", device);
        await Assert.ThrowsAsync<IdentityException>(() => _f.LoginAsync("alice", Device.Create()));
        await Assert.ThrowsAsync<IdentityException>(() => _f.Service.RefreshAsync(pair.RefreshToken + "x", null));

        var audit = await _f.Store.ReadAuditAsync(0, 100);

        Assert.Contains(audit, e => e.Event == "register" && e.Subject == "alice");
        Assert.Contains(audit, e => e.Event == "login" && e.Subject == "alice");
        Assert.Contains(audit, e => e.Event == "login.failed" && e.Detail == "bad_signature");
        foreach (var entry in audit)
        {
            var text = string.Join("|", entry.Event, entry.Actor, entry.Subject, entry.Address, entry.Detail);
            Assert.DoesNotContain(pair.RefreshToken, text, StringComparison.Ordinal);
            Assert.DoesNotContain(pair.AccessToken, text, StringComparison.Ordinal);
        }
    }
}
