#include "auth/base64.hpp"

#include <gtest/gtest.h>

#include <string_view>

namespace broker::auth {
namespace {

TEST(Base64Test, Base64urlDecodesRfc4648Vectors) {
  EXPECT_EQ(detail::base64url_decode(""), "");
  EXPECT_EQ(detail::base64url_decode("Zg"), "f");
  EXPECT_EQ(detail::base64url_decode("Zm8"), "fo");
  EXPECT_EQ(detail::base64url_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(detail::base64url_decode("-_8"), "\xfb\xff");
  EXPECT_EQ(detail::base64url_encode("\xfb\xff"), "-_8");
}

TEST(Base64Test, Base64urlRejectsPaddingForeignCharactersAndNonCanonicalText) {
  EXPECT_FALSE(detail::base64url_decode("Zg=="));
  EXPECT_FALSE(detail::base64url_decode("+/8"));       // the other alphabet
  EXPECT_FALSE(detail::base64url_decode("Zm9v Ymk"));  // whitespace
  EXPECT_FALSE(detail::base64url_decode("Zm9vY"));     // length 4n+1 encodes nothing
  EXPECT_FALSE(detail::base64url_decode("Zh"));        // "f" with a stray low bit
  EXPECT_FALSE(detail::base64url_decode(std::string_view("Zg\0", 3)));
}

TEST(Base64Test, Base64RequiresExactPadding) {
  EXPECT_EQ(detail::base64_decode("Zm9vYg=="), "foob");
  EXPECT_EQ(detail::base64_decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(detail::base64_encode("foob"), "Zm9vYg==");
  EXPECT_FALSE(detail::base64_decode("Zm9vYg"));
  EXPECT_FALSE(detail::base64_decode("Zm9vYg="));
  EXPECT_FALSE(detail::base64_decode("Zm9vY==="));
  EXPECT_FALSE(detail::base64_decode("Zm=vYg=="));
  EXPECT_FALSE(detail::base64_decode("Zm9v-_=="));
}

}  // namespace
}  // namespace broker::auth
