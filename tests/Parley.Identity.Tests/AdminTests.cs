using Parley.Identity;

namespace Parley.Identity.Tests;

/// <summary>User administration: who may act on whom, and the change events live sockets follow.</summary>
public sealed class AdminTests : IAsyncLifetime
{
    private IdentityFixture _f = null!;
    private readonly List<CredentialChange> _changes = [];
    private Caller _owner = null!;
    private Caller _admin = null!;
    private Device _memberDevice = null!;

    public async Task InitializeAsync()
    {
        _f = await IdentityFixture.StartAsync(o => o.Registration = RegistrationPolicy.Open);
        _f.Service.CredentialsChanged += _changes.Add;
        var (ownerDevice, _) = await _f.RegisterAsync("owner1");
        _owner = await _f.CallerAsync((await _f.LoginAsync("owner1", ownerDevice)).AccessToken);
        var (adminDevice, _) = await _f.RegisterAsync("ada");
        await _f.Service.SetRoleAsync(_owner, "ada", HubRole.Admin);
        _admin = await _f.CallerAsync((await _f.LoginAsync("ada", adminDevice)).AccessToken);
        (_memberDevice, _) = await _f.RegisterAsync("mia");
        _changes.Clear();
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private static async Task<string> RefusalAsync(Func<Task> action) => (await Assert.ThrowsAsync<IdentityException>(action)).Code;

    [Fact]
    public async Task Admins_manage_members_but_not_admins_owners_or_themselves()
    {
        await _f.Service.SetRoleAsync(_admin, "mia", HubRole.Guest);
        Assert.Equal(HubRole.Guest, (await _f.Store.GetUserAsync("mia"))!.Role);

        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.SetRoleAsync(_admin, "mia", HubRole.Admin)));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.BanAsync(_admin, "owner1")));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.KickAsync(_admin, "ada")));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.BanAsync(_owner, "owner1")));
        Assert.Equal("user_not_found", await RefusalAsync(() => _f.Service.BanAsync(_owner, "ghost")));

        // The owner manages admins.
        await _f.Service.SetRoleAsync(_owner, "ada", HubRole.Member);
        Assert.Equal(HubRole.Member, (await _f.Store.GetUserAsync("ada"))!.Role);
    }

    [Fact]
    public async Task A_ban_revokes_refresh_tokens_and_announces_itself()
    {
        var pair = await _f.LoginAsync("mia", _memberDevice);

        await _f.Service.BanAsync(_admin, "mia");

        Assert.Equal("invalid_grant", await RefusalAsync(() => _f.Service.RefreshAsync(pair.RefreshToken, null)));
        Assert.Equal("banned", (await _f.Service.AuthenticateAsync(pair.AccessToken)).Error);
        Assert.Contains(_changes, c => c.Kind == CredentialChangeKind.UserBanned && c.UserName == "mia");

        await _f.Service.UnbanAsync(_admin, "mia");
        Assert.Equal("mia", (await _f.CallerAsync(pair.AccessToken)).Name); // the access token itself was never revoked
        var audit = await _f.Store.ReadAuditAsync(0, 200);
        Assert.Contains(audit, e => e.Event == "user.banned" && e.Subject == "mia" && e.Actor == "ada");
        Assert.Contains(audit, e => e.Event == "user.unbanned" && e.Subject == "mia");
    }

    [Fact]
    public async Task Revoking_a_users_credentials_kills_keys_and_refresh_tokens_but_not_the_device()
    {
        var pair = await _f.LoginAsync("mia", _memberDevice);
        var mia = await _f.CallerAsync(pair.AccessToken);
        var (_, secret) = await _f.Service.CreateApiKeyAsync(mia, "bot", ApiKeyScope.Write, null, null, null);

        await _f.Service.RevokeUserCredentialsAsync(_admin, "mia");

        Assert.Equal("revoked", (await _f.Service.AuthenticateAsync(secret)).Error);
        Assert.Equal("invalid_grant", await RefusalAsync(() => _f.Service.RefreshAsync(pair.RefreshToken, null)));
        Assert.NotNull(await _f.LoginAsync("mia", _memberDevice));
        Assert.Contains(_changes, c => c.Kind == CredentialChangeKind.UserCredentialsRevoked && c.UserName == "mia");
    }

    [Fact]
    public async Task Key_revocation_role_changes_and_kicks_raise_changes()
    {
        var mia = await _f.CallerAsync((await _f.LoginAsync("mia", _memberDevice)).AccessToken);
        var (key, _) = await _f.Service.CreateApiKeyAsync(mia, "bot", ApiKeyScope.Write, null, null, null);

        await _f.Service.RevokeApiKeyAsync(mia, key.Id);
        await _f.Service.SetRoleAsync(_admin, "mia", HubRole.Guest);
        await _f.Service.KickAsync(_admin, "mia");

        Assert.Equal(
            [CredentialChangeKind.KeyRevoked, CredentialChangeKind.RoleChanged, CredentialChangeKind.UserKicked],
            _changes.Select(c => c.Kind));
        Assert.Equal(key.Id, _changes[0].ApiKeyId);
        Assert.Equal(HubRole.Guest, _changes[1].Role);
    }

    [Fact]
    public async Task Revoking_credentials_refuses_access_tokens_issued_before()
    {
        var pair = await _f.LoginAsync("mia", _memberDevice);
        _f.Clock.Advance(TimeSpan.FromSeconds(2));

        await _f.Service.RevokeUserCredentialsAsync(_admin, "mia");

        Assert.Equal("revoked", (await _f.Service.AuthenticateAsync(pair.AccessToken)).Error);
        _f.Clock.Advance(TimeSpan.FromSeconds(2));
        var fresh = await _f.LoginAsync("mia", _memberDevice);
        Assert.Equal("mia", (await _f.CallerAsync(fresh.AccessToken)).Name);
    }

    [Fact]
    public async Task Admins_cannot_mint_keys_for_owners_or_admin_invites_and_hub_keys_are_admin_business()
    {
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.CreateApiKeyAsync(_admin, "steal", ApiKeyScope.Admin, null, null, "owner1")));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.CreateInviteAsync(_admin, HubRole.Admin, 1, null)));
        Assert.NotNull(await _f.Service.CreateInviteAsync(_owner, HubRole.Admin, 1, null));

        // Two hub keys (no user): a write-scoped one must not revoke the other (both have UserName null).
        var hubKey = new ApiKeyRecord("hubkey1", "ops", null, HubRole.Owner, ApiKeyScope.Admin, null, "hash-ops", _f.NowMs, null, null, "hub");
        await _f.Store.CreateApiKeyAsync(hubKey);
        var writeHubKeyCaller = new Caller("key:bot", HubRole.Member, null, "hubkey2", null, null);
        Assert.Equal("key_not_found", await RefusalAsync(() => _f.Service.RevokeApiKeyAsync(writeHubKeyCaller, hubKey.Id)));
        await _f.Service.RevokeApiKeyAsync(_owner, hubKey.Id);
    }

    [Fact]
    public async Task A_narrow_key_cannot_mint_a_wider_one_or_manage_channels()
    {
        var mia = await _f.CallerAsync((await _f.LoginAsync("mia", _memberDevice)).AccessToken);
        var (_, readSecret) = await _f.Service.CreateApiKeyAsync(mia, "reader", ApiKeyScope.Read, "room:ci-*", null, null);
        var reader = await _f.CallerAsync(readSecret);

        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.CreateApiKeyAsync(reader, "wider", ApiKeyScope.Write, null, null, null)));
        Assert.Equal("key_not_found", await RefusalAsync(() => _f.Service.RevokeApiKeyAsync(reader, "anything")));

        await _f.Service.CreateChannelAsync(mia, "room:secret", isPrivate: true);
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.AddChannelMemberAsync(reader, "room:secret", "ada", false)));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.CreateChannelAsync(reader, "room:elsewhere", false)));

        // A channel admin demoted to guest no longer manages it.
        await _f.Service.SetRoleAsync(_admin, "mia", HubRole.Guest);
        var demoted = await _f.CallerAsync((await _f.LoginAsync("mia", _memberDevice)).AccessToken);
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.SetChannelPrivateAsync(demoted, "room:secret", false)));
    }
}
