using Parley.Identity;

namespace Parley.Identity.Tests;

/// <summary>Registration policies, invites (including racing claims) and the initial owner key.</summary>
public sealed class RegistrationTests
{
    private static async Task<IdentityException> Refused(Func<Task> action) => await Assert.ThrowsAsync<IdentityException>(action);

    private static async Task<Caller> OwnerAsync(IdentityFixture f)
    {
        var (device, role) = await f.RegisterAsync("owner1");
        Assert.Equal(HubRole.Owner, role);
        return await f.CallerAsync((await f.LoginAsync("owner1", device)).AccessToken);
    }

    [Theory]
    [InlineData(RegistrationPolicy.Invite, "invite_required")]
    [InlineData(RegistrationPolicy.Closed, "registration_closed")]
    public async Task The_first_user_becomes_owner_then_the_policy_decides(RegistrationPolicy policy, string refusal)
    {
        await using var f = await IdentityFixture.StartAsync(o => o.Registration = policy);

        var (_, first) = await f.RegisterAsync("alice");
        var second = await Refused(() => f.RegisterAsync("bob"));

        Assert.Equal(HubRole.Owner, first);
        Assert.Equal(refusal, second.Code);
        // An existing name gets the same refusal: outsiders cannot probe which names exist.
        Assert.Equal(refusal, (await Refused(() => f.RegisterAsync("alice"))).Code);
        Assert.Equal(IdentityErrorKind.Forbidden, second.Kind);
        Assert.Null(await f.Store.GetUserAsync("bob"));
    }

    [Fact]
    public async Task Open_registration_makes_members_and_names_and_keys_are_unique()
    {
        await using var f = await IdentityFixture.StartAsync(o => o.Registration = RegistrationPolicy.Open);
        var (alice, _) = await f.RegisterAsync("alice");

        var (_, role) = await f.RegisterAsync("bob");
        Assert.Equal(HubRole.Member, role);

        Assert.Equal("name_taken", (await Refused(() => f.RegisterAsync("alice"))).Code);
        Assert.Equal("key_taken", (await Refused(() => f.Service.RegisterAsync("carol", alice.PublicKey, null, null, null))).Code);
        Assert.Equal("invalid_name", (await Refused(() => f.RegisterAsync("Bad Name"))).Code);
        Assert.Equal("invalid_name", (await Refused(() => f.RegisterAsync("x"))).Code);
        Assert.Equal("invalid_public_key", (await Refused(() => f.Service.RegisterAsync("dave", new byte[31], null, null, null))).Code);
    }

    [Fact]
    public async Task Invites_grant_their_role_and_fail_with_distinct_reasons()
    {
        await using var f = await IdentityFixture.StartAsync();
        var owner = await OwnerAsync(f);

        var guestInvite = await f.Service.CreateInviteAsync(owner, HubRole.Guest, maxUses: 2, lifetime: null);
        Assert.Equal(HubRole.Guest, (await f.RegisterAsync("gina", guestInvite.Code)).Role);
        Assert.Equal(HubRole.Guest, (await f.RegisterAsync("gus", guestInvite.Code)).Role);
        Assert.Equal("invite_exhausted", (await Refused(() => f.RegisterAsync("gil", guestInvite.Code))).Code);

        var revoked = await f.Service.CreateInviteAsync(owner, HubRole.Member, 1, null);
        await f.Service.RevokeInviteAsync(owner, revoked.Code);
        Assert.Equal("invite_revoked", (await Refused(() => f.RegisterAsync("rob", revoked.Code))).Code);

        var shortLived = await f.Service.CreateInviteAsync(owner, HubRole.Member, 1, TimeSpan.FromMinutes(5));
        f.Clock.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal("invite_expired", (await Refused(() => f.RegisterAsync("eve", shortLived.Code))).Code);

        Assert.Equal("invite_not_found", (await Refused(() => f.RegisterAsync("nina", "inv_nope"))).Code);

        // A failed claim does not consume a use.
        var invite = await f.Service.CreateInviteAsync(owner, HubRole.Admin, 1, null);
        await Refused(() => f.RegisterAsync("gina", invite.Code)); // name taken
        Assert.Equal(HubRole.Admin, (await f.RegisterAsync("adam", invite.Code)).Role);
    }

    [Fact]
    public async Task Racing_claims_of_a_one_use_invite_have_exactly_one_winner()
    {
        await using var f = await IdentityFixture.StartAsync();
        var owner = await OwnerAsync(f);
        var invite = await f.Service.CreateInviteAsync(owner, HubRole.Member, maxUses: 1, lifetime: null);

        var claims = Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
        {
            try
            {
                await f.RegisterAsync($"racer{i}", invite.Code);
                return "won";
            }
            catch (IdentityException ex)
            {
                return ex.Code;
            }
        })).ToList();
        var results = await Task.WhenAll(claims);

        Assert.Equal(1, results.Count(r => r == "won"));
        Assert.All(results.Where(r => r != "won"), r => Assert.Equal("invite_exhausted", r));
        Assert.Single(await f.Store.ListUsersAsync(), u => u.Name.StartsWith("racer", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Only_admins_manage_invites_and_never_grant_owner()
    {
        await using var f = await IdentityFixture.StartAsync();
        var owner = await OwnerAsync(f);
        var invite = await f.Service.CreateInviteAsync(owner, HubRole.Member, 1, null);
        var (device, _) = await f.RegisterAsync("mia", invite.Code);
        var member = await f.CallerAsync((await f.LoginAsync("mia", device)).AccessToken);

        Assert.Equal("forbidden", (await Refused(() => f.Service.CreateInviteAsync(member, HubRole.Member, 1, null))).Code);
        Assert.Equal("forbidden", (await Refused(() => f.Service.ListInvitesAsync(member))).Code);
        Assert.Equal("forbidden", (await Refused(() => f.Service.ReadAuditAsync(member, 0, 10))).Code);
        Assert.Equal("forbidden", (await Refused(() => f.Service.CreateInviteAsync(owner, HubRole.Owner, 1, null))).Code);
    }

    [Fact]
    public async Task The_initial_owner_key_is_made_once_on_an_empty_hub_and_acts_as_owner()
    {
        await using var f = await IdentityFixture.StartAsync();

        var secret = await f.Service.CreateInitialOwnerKeyAsync();
        Assert.NotNull(secret);
        Assert.StartsWith("prl_", secret, StringComparison.Ordinal);
        Assert.True(secret!.Length >= 4 + 43); // 32 random bytes, base64url
        Assert.Null(await f.Service.CreateInitialOwnerKeyAsync());

        var caller = await f.CallerAsync(secret);
        Assert.Equal(HubRole.Owner, caller.Role);
        Assert.Equal("key:initial-owner", caller.Name);
        Assert.Null(caller.UserName);

        // It can invite before anyone registers; the first user still becomes owner.
        var invite = await f.Service.CreateInviteAsync(caller, HubRole.Admin, 1, null);
        var (_, first) = await f.RegisterAsync("alice");
        Assert.Equal(HubRole.Owner, first);
        Assert.Equal(HubRole.Admin, (await f.RegisterAsync("bob", invite.Code)).Role);
    }
}
