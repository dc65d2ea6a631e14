using Parley.Identity;
using Parley.Identity.Crypto;

namespace Parley.Identity.Tests;

/// <summary>API keys: shown once, stored hashed, scoped, expiring, revocable.</summary>
public sealed class ApiKeyTests : IAsyncLifetime
{
    private IdentityFixture _f = null!;
    private Caller _owner = null!;
    private Caller _member = null!;

    public async Task InitializeAsync()
    {
        _f = await IdentityFixture.StartAsync(o => o.Registration = RegistrationPolicy.Open);
        var (ownerDevice, _) = await _f.RegisterAsync("owner1");
        _owner = await _f.CallerAsync((await _f.LoginAsync("owner1", ownerDevice)).AccessToken);
        var (memberDevice, _) = await _f.RegisterAsync("mia");
        _member = await _f.CallerAsync((await _f.LoginAsync("mia", memberDevice)).AccessToken);
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    [Fact]
    public async Task A_key_is_prefixed_random_and_stored_only_as_a_hash()
    {
        var (key, secret) = await _f.Service.CreateApiKeyAsync(_member, "ci-bot", ApiKeyScope.Write, null, null, null);

        Assert.StartsWith(Secrets.ApiKeyPrefix, secret, StringComparison.Ordinal);
        Assert.True(System.Buffers.Text.Base64Url.DecodeFromChars(secret.AsSpan(4)).Length >= 32);
        Assert.Equal(Secrets.Hash(secret), key.Hash);
        var stored = await _f.Store.GetApiKeyAsync(key.Id);
        Assert.NotNull(stored);
        Assert.DoesNotContain(secret, stored!.ToString(), StringComparison.Ordinal);

        var caller = await _f.CallerAsync(secret);
        Assert.Equal("mia", caller.Name);
        Assert.Equal(HubRole.Member, caller.Role);
        Assert.Equal(key.Id, caller.ApiKeyId);
    }

    [Fact]
    public async Task Scope_caps_the_role_and_topics_restrict_joins()
    {
        var (_, readOnly) = await _f.Service.CreateApiKeyAsync(_owner, "reader", ApiKeyScope.Read, "room:ci-*", null, null);
        var caller = await _f.CallerAsync(readOnly);
        Assert.Equal(HubRole.Guest, caller.Role);
        Assert.Equal("room:ci-*", caller.TopicPattern);

        var principal = IdentityAuthenticator.ToPrincipal(caller);
        Assert.False(principal.CanWrite);
        var gate = new IdentityAuthenticator(_f.Service);
        Assert.Null(await gate.AuthorizeJoinAsync(principal, "room:ci-builds", default, default));
        Assert.Equal("forbidden", await gate.AuthorizeJoinAsync(principal, "room:general", default, default));

        Assert.Equal("forbidden", (await Assert.ThrowsAsync<IdentityException>(() =>
            _f.Service.CreateApiKeyAsync(_member, "admin-key", ApiKeyScope.Admin, null, null, null))).Code);
        Assert.Equal("forbidden", (await Assert.ThrowsAsync<IdentityException>(() =>
            _f.Service.CreateApiKeyAsync(_member, "for-owner", ApiKeyScope.Write, null, null, "owner1"))).Code);
    }

    [Fact]
    public async Task Revoked_and_expired_keys_stop_working()
    {
        var (key, secret) = await _f.Service.CreateApiKeyAsync(_member, "temp", ApiKeyScope.Write, null, TimeSpan.FromHours(1), null);
        var (other, otherSecret) = await _f.Service.CreateApiKeyAsync(_member, "other", ApiKeyScope.Write, null, null, null);

        await _f.Service.RevokeApiKeyAsync(_member, other.Id);
        Assert.Equal("revoked", (await _f.Service.AuthenticateAsync(otherSecret)).Error);

        await _f.CallerAsync(secret);
        _f.Clock.Advance(TimeSpan.FromHours(1));
        Assert.Equal("expired", (await _f.Service.AuthenticateAsync(secret)).Error);

        Assert.Equal("invalid", (await _f.Service.AuthenticateAsync("prl_" + new string('A', 43))).Error);
        Assert.Equal("key_not_found", (await Assert.ThrowsAsync<IdentityException>(() => _f.Service.RevokeApiKeyAsync(_member, "nope"))).Code);
        Assert.Contains(key.Id, (await _f.Service.ListApiKeysAsync(_member)).Select(k => k.Id));
    }

    [Fact]
    public async Task Members_see_their_own_keys_and_admins_see_all()
    {
        await _f.Service.CreateApiKeyAsync(_member, "mine", ApiKeyScope.Write, null, null, null);
        await _f.Service.CreateApiKeyAsync(_owner, "theirs", ApiKeyScope.Write, null, null, null);

        Assert.Equal(["mine"], (await _f.Service.ListApiKeysAsync(_member)).Select(k => k.Name));
        Assert.Equal(["mine", "theirs"], (await _f.Service.ListApiKeysAsync(_owner)).Select(k => k.Name).Order());
    }

    [Fact]
    public async Task A_banned_users_keys_stop_working()
    {
        var (_, secret) = await _f.Service.CreateApiKeyAsync(_member, "bot", ApiKeyScope.Write, null, null, null);
        await _f.Store.SetBannedAsync("mia", _f.NowMs);
        Assert.Equal("banned", (await _f.Service.AuthenticateAsync(secret)).Error);
    }

    [Theory]
    [InlineData("room:ci-*", "room:ci-build", true)]
    [InlineData("room:ci-*", "room:ci-", true)]
    [InlineData("room:ci-*", "room:cx", false)]
    [InlineData("room:*-logs", "room:web-logs", true)]
    [InlineData("room:*-logs", "room:web-logs2", false)]
    [InlineData("*", "anything", true)]
    [InlineData("room:exact", "room:exact", true)]
    [InlineData("room:exact", "room:exactly", false)]
    public void Topic_patterns_match_with_star_wildcards(string pattern, string topic, bool matches) =>
        Assert.Equal(matches, TopicPatterns.Matches(pattern, topic));
}
